"""From real music to real fingerprints: build_data.py's stages (`pipeline`: catalog ->
splits -> training -> export) and what they use (corpus, features, augment,
fingerprinter, embed, queries, scoring, workdir)."""
