"""Development only: the demo, its sandbox root and a throwaway PostgreSQL. The image and
the appliance never import this package."""
