from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("reverse/", views.echo_body),
    path("slow/", views.slow),
]
