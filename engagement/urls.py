from django.urls import path

from engagement import views

urlpatterns = [
    path("", views.home, name="home"),
    path("t/<slug:slug>/", views.overview, name="overview"),
]
