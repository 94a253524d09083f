"""HL7 FHIR R4 output: the result as a Bundle, and its delivery to a FHIR server."""
