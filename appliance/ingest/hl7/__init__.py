"""HL7 v2 intake: framing, escapes, parsing into Documents, acknowledgements."""
