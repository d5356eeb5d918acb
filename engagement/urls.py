from django.urls import path, re_path

from engagement import assignment_views, by_hand, import_views, views

ACTIONS = "milestone|satisfaction|lost|reopened|paused|resumed|note|reassign|criteria"

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
    path("settings/assignment/", assignment_views.rules_page, name="assignment"),
    path("settings/assignment/apply/", assignment_views.apply_now, name="assignment-apply"),
    re_path(
        r"^settings/assignment/(?P<rule_id>[0-9a-f-]{36})/(?P<action>up|down|delete)/$",
        assignment_views.rule_act,
        name="assignment-rule",
    ),
    path("settings/imports/", import_views.imports_page, name="imports"),
    path("settings/imports/<uuid:import_id>/", import_views.import_page, name="import"),
    path("settings/imports/<uuid:import_id>/start/", import_views.import_start, name="import-start"),
    path("settings/imports/<uuid:import_id>/rejected.csv", import_views.import_rejected, name="import-rejected"),
    re_path(
        r"^settings/imports/samples/(?P<kind>customers|purchases|events)/$",
        import_views.import_sample,
        name="import-sample",
    ),
    path("journeys/", views.journeys, name="journeys"),
    path("journeys/new/", views.journey_edit, name="journey-new"),
    path("journeys/<str:key>/", views.journey_edit, name="journey-edit"),
]

urlpatterns = [path("", views.home, name="home")]
