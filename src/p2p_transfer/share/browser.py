"""Which browser uploads, in words the host knows ("Chrome on Android"), from its User-Agent.

The host is asked about each upload; an IP address alone tells a person little. The
summary is made only of the fixed names below, never of text the browser sent, so a
crafted User-Agent cannot put words on the host's screen. It is a hint, not an identity:
any browser can claim to be another.
"""

from __future__ import annotations

#: (token in the User-Agent, name): the first match wins, so a browser built on another
#: (Edge and Opera on Chrome, Chrome on Safari's engine) comes before it.
_BROWSERS = (
    ("Edg/", "Edge"), ("EdgA/", "Edge"), ("EdgiOS/", "Edge"), ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"), ("Firefox/", "Firefox"), ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"), ("Chromium/", "Chromium"), ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
#: (token, system), the same way: Android before Linux, iPhone and iPad before "Mac OS X".
_SYSTEMS = (
    ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("CrOS", "ChromeOS"),
    ("Windows", "Windows"), ("Macintosh", "macOS"), ("Linux", "Linux"),
)


def browser_summary(user_agent: str) -> str:
    """``"Chrome on Android"``, ``"Firefox"``, ``"a browser on iPhone"``; "" when the
    User-Agent names no browser or system we know (a script, a bare HTTP client)."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), "")
    system = next((name for token, name in _SYSTEMS if token in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    if browser:
        return browser
    return f"a browser on {system}" if system else ""
