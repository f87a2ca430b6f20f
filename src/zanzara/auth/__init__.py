"""Mosquitto-compatible password files and ACL files."""
