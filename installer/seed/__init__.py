"""The seed: reading setup.txt, the model and its rules, profiles, resolution, rewriting."""
