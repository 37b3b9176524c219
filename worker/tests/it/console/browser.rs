//! The console in a real browser (Debian's chromium through chromedriver).
