"""HTTP clients for EspoCRM, Advoware and Google Calendar, and their sandbox simulators. No Celery in here."""
