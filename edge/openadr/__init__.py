"""OpenADR 2.0b: the building side (VEN) turns a utility's events into grid-function runs;
the coordinator side (VTN) sends events to many buildings and collects their reports."""
