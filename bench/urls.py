from django.conf import settings
from django.urls import path

from bench.views import VIEWS

urlpatterns = [path("bench", VIEWS[settings.VIEW])]
