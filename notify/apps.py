from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "notify"
    verbose_name = "Notifications"

    def ready(self):
        # Each feature registers its outbox handlers (engagement.outbox.register) in its register().
        from notify import confirmations, webhooks

        confirmations.register()
        webhooks.register()
