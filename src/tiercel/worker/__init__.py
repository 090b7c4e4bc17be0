"""The worker: connects out to a manager, pulls tasks, runs them, reports back."""
