"""The receiver's last stages: ``renderer`` (a picture -> characters -> ANSI diff bytes for one
tile) and ``layout`` (tile, chat and status rectangles for a terminal size). Both sans-I/O.
Must not: read the clock, touch the terminal or the network.
"""
