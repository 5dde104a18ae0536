"""Datasets the course makes itself: Glyphs-10 for classification (``glyphs``), its image-folder form
(``folder``) and a sample grid for the notebooks (``gallery``). Detection data is in ``course.yolo.data``."""
