"""Commands of this module are being written; it registers nothing yet."""
