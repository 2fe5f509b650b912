"""One script per figure; each also callable from Python."""
