"""Twins of DIALS, Keycloak, OMS, DBS and CAF, served from one process (`dialsflow-emulator`).

A test double the product never imports. Every answer derives from world/ at the request's
clock; dials/ and oms/ are the large twins, caf, dbs and keycloak the small ones; app joins
them under their real URL paths. Tests and localdev/ start it with process.EmulatorProcess.
"""
