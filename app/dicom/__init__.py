"""DICOM in and out: STOW-RS intake, multipart/related, and the result instances (SC + SR) sent back to a PACS."""
