"""The Celery side: the app (Redis broker and result backend) and the job tasks."""

QUEUES = ("attacks", "training", "evaluation")
"""``attacks``: adversarial-set chunks; ``training``: classifier and detector training;
``evaluation``: reports. Workers can be added per queue on other machines."""
