"""Widget logic and plots for the chapters: one module per chapter (``chNN_<topic>.py``)."""
