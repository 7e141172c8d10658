"""Platform releases (DESIGN §9, issue 23): a signed bundle verified against the image's key,
applied beside the current release with a way back, and a power cut finished or rolled back
before the platform starts again."""
