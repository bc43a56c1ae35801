"""The local web app (``diffexplain serve``): ``app.create_app`` and its run worker (``jobs``)."""
