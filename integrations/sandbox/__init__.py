"""Stateful HTTP simulators of EspoCRM, Advoware and Google Calendar (the sandbox). No Celery in here."""
