from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/items", views.items, name="items"),
    path("api/overview", views.overview),
    path("form", views.form),
    path("upload", views.upload),
    path("old", views.old),
    path("cookie/set", views.set_cookie),
    path("cookie/get", views.get_cookie),
    path("stream", views.stream),
    path("download/<str:name>", views.download),
    path("send/<str:name>", views.send),
]
