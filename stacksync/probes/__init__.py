"""Scripts run *inside a target interpreter* by path (standard library only, CPython >= 3.8); shipped in
the wheel so that an installed stacksync can probe any environment. Never imported by stacksync."""
