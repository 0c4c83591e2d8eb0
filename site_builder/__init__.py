"""site_builder: turn experiment exports and markdown chapters into a static report site."""

__version__ = "0.1.0"
