"""The translation core: PEP 3333 and ASGI HTTP meet here, with no threads or loops."""
