from django.urls import path, re_path

from engagement import by_hand, views

ACTIONS = "milestone|satisfaction|lost|reopened|paused|resumed|note|reassign"

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = [
    path("engagements/", views.engagement_list, name="engagements"),
    path("engagements/export.csv", views.engagement_export, name="engagements-export"),
    path("engagements/reassign/", views.engagement_bulk_reassign, name="engagements-reassign"),
    path("engagements/new/", by_hand.purchase_new, name="purchase-new"),
    path("customers/<uuid:customer_id>/", by_hand.customer_edit, name="customer-edit"),
    path("engagements/<uuid:engagement_id>/", views.engagement_detail, name="engagement"),
    re_path(
        rf"^engagements/(?P<engagement_id>[0-9a-f-]{{36}})/(?P<action>{ACTIONS})/$",
        views.engagement_act,
        name="engagement-act",
    ),
    path("journeys/", views.journeys, name="journeys"),
    path("journeys/new/", views.journey_edit, name="journey-new"),
    path("journeys/<str:key>/", views.journey_edit, name="journey-edit"),
]

urlpatterns = [path("", views.home, name="home")]
