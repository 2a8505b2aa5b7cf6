"""Speech engines of whisper_transcriber (one module per library)."""
