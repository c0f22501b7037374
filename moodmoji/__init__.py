"""moodmoji: the application shell (command line, settings, user-facing errors).

The product lives in the four packages beside this one: `gan` (the models),
`sentiment` (text to mood), `worker` (queue and sampling service) and `bot`
(Discord and local front ends).
"""

__version__ = "0.1.0"
