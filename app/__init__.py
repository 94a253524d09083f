"""The chest X-ray pneumonia screening service."""
