"""From real music to real fingerprints: corpus, features, augmentation, encoder, export."""
