"""The pluggable notifiers live in shared/notifier.py (appointments' reminders, followup's
survey links and campaigns' messages use them); kept here for existing imports."""

from shared.notifier import OutboxNotifier, WebhookNotifier, notifier_for  # noqa: F401
