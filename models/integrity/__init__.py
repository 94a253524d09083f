"""Input integrity: is this image a frontal chest radiograph the classifier may read?

Two owners, one per kind of evidence:
- ``dicom_rules``: what the DICOM header says (modality, body part, view, age);
- ``guard``: what the pixels look like (a small carded model, ``fit`` builds it).
"""
