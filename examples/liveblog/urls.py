from django.urls import path

from . import views

app_name = "liveblog"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/", views.blog, name="blog"),
]
