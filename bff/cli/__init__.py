"""The command line, the only code that reads `os.environ`: main (arguments, dispatch),
serve_command (`bff serve`), serve (uvicorn with a graceful shutdown), factory (a
worker's app), check_config, sessions, configuration (settings from the environment),
logging_setup, admin_listener.
"""
