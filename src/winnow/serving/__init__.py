"""winnow.serving: the HTTP service (create_app, serve), online user state, bundle hot swap."""
