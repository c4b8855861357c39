"""bitbylaw-tasks: EspoCRM <-> Advoware <-> Google Calendar sync as a Celery distributed task system."""
