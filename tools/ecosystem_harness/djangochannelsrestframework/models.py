"""The models the suite imports from tests.models (its sdist ships none)."""

from django.db import models


class TestModel(models.Model):
    __test__ = False

    name = models.CharField(max_length=255)


class TestModelWithCustomPK(models.Model):
    __test__ = False

    name = models.CharField(max_length=255, primary_key=True)
    description = models.CharField(max_length=255, null=True, blank=True)
