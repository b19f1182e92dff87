"""The Textual app (`charchat` with no arguments): chat, training and models screens over the
headless core. `charchat.tui.app.run(model)` starts it."""
