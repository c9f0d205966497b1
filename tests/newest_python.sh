#!/bin/sh
# Print the newest Python 3.12+ interpreter on this machine (Django 6 needs 3.12).
for version in 3.14 3.13 3.12; do
    if command -v "python$version" >/dev/null 2>&1 && "python$version" -V >/dev/null 2>&1; then
        echo "python$version"; exit 0
    fi
    for candidate in "$HOME"/.pyenv/versions/"$version"*/bin/python"$version" \
                     /usr/local/bin/python"$version" /usr/bin/python"$version"; do
        if [ -x "$candidate" ] && "$candidate" -V >/dev/null 2>&1; then
            echo "$candidate"; exit 0
        fi
    done
done
echo "No Python 3.12 or newer found: Django 6 cannot be tested here." >&2
exit 1
