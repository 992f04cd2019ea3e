"""The screen corpus and the script that captures it."""
