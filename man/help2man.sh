#!/bin/sh
# help2man.sh: writes a man page (man(7) macros) from a program's --help, so the pages
# installed with cnnc say what the program it was built with says.
#     help2man.sh PROGRAM NAME VERSION SUMMARY TAIL OUT [SUBCOMMAND TITLE]...
# The usage lines become SYNOPSIS, the text before the first option DESCRIPTION, the
# option lines ("  --opt ARG   what it does", continued by indented lines) OPTIONS;
# each SUBCOMMAND's "PROGRAM SUBCOMMAND --help" becomes a section TITLE of its own; the
# roff of the file TAIL (ENVIRONMENT, FILES, SEE ALSO) ends the page. The date is
# SOURCE_DATE_EPOCH's when set, so that a rebuild can give the same bytes.
set -eu

if [ $# -lt 6 ]; then
    echo "usage: $0 PROGRAM NAME VERSION SUMMARY TAIL OUT [SUBCOMMAND TITLE]..." >&2
    exit 2
fi
program=$1 name=$2 version=$3 summary=$4 tail=$5 out=$6
shift 6

# One --help text on standard input as roff; mode "main" heads its parts SYNOPSIS,
# DESCRIPTION and OPTIONS, any other mode is the title of the one section it fills.
to_roff() {
    awk -v mode="$1" -v quote="'" '
    # Backslashes and leading dots or quotes stand for themselves; so do the hyphens of a
    # word that starts with one (an option: -o, --gpu-arch), which roff would otherwise
    # print as dashes that cannot be pasted into a shell.
    function esc(s, all,    r, i, c, prev, opt) {
        gsub(/\\/, "\\e", s)
        r = ""
        prev = " "
        opt = 0
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (c == " ") opt = 0
            else if (c == "-" && index(" ([|,=/\"`", prev) > 0) opt = 1
            if (c == "-" && (all || opt)) r = r "\\-"
            else r = r c
            prev = c
        }
        c = substr(r, 1, 1)
        if (c == "." || c == quote) r = "\\&" r
        return r
    }
    function trim(s) {
        sub(/^[ \t]+/, "", s)
        sub(/[ \t]+$/, "", s)
        return s
    }
    function heading(title) {
        printf ".SH %s\n", toupper(title)
    }
    BEGIN { state = "start" }
    state == "start" && /^usage: / {
        heading(mode == "main" ? "SYNOPSIS" : mode)
        print ".nf"
        print esc(substr($0, 8), 1)
        state = "usage"
        next
    }
    state == "usage" && /^       / {
        print esc(trim($0), 1)
        next
    }
    state == "usage" {
        print ".fi"
        state = "text"
        if (mode == "main") heading("DESCRIPTION")
        else print ".PP"
        if ($0 == "") next
    }
    # An option: its name, then its description from the first run of two spaces or
    # from the column descriptions start at (22), whichever the line has.
    /^  -/ {
        if (mode == "main" && !options) heading("OPTIONS")
        options = 1
        line = substr($0, 3)
        p = index(line, "  ")
        if (p > 0) {
            opt = substr(line, 1, p - 1)
            desc = trim(substr(line, p))
        } else if (length($0) > 22 && substr($0, 22, 1) == " ") {
            opt = trim(substr($0, 3, 19))
            desc = trim(substr($0, 23))
        } else {
            opt = trim(line)
            desc = ""
        }
        print ".TP"
        print "\\fB" esc(opt, 1) "\\fR"
        if (desc != "") print esc(desc, 0)
        state = "option"
        next
    }
    state == "option" && /^    / {
        print esc(trim($0), 0)
        next
    }
    # An indented note among the options ("  weights default to ..."): indented as
    # their descriptions are.
    /^  [^ ]/ && options {
        print ".IP"
        print esc(trim($0), 0)
        state = "option"
        next
    }
    /^$/ {
        if (state != "start") state = "break"
        next
    }
    {
        if (state == "break" || state == "option") print ".PP"
        print esc($0, 0)
        state = "text"
    }
    END { if (state == "usage") print ".fi" }
    '
}

upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
date=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%d)
tmp="$out.tmp"
{
    printf '.\\" Made by man/help2man.sh from %s --help; edit the program, not this page.\n' \
        "$name"
    printf '.TH %s 1 %s "%s %s" "User Commands"\n' "$upper" "$date" "$name" "$version"
    printf '.SH NAME\n%s \\- %s\n' "$name" "$summary"
    help=$("$program" --help) || exit 1
    printf '%s\n' "$help" | to_roff main
    while [ $# -ge 2 ]; do
        help=$("$program" "$1" --help) || exit 1
        printf '%s\n' "$help" | to_roff "$2"
        shift 2
    done
    cat "$tail"
} > "$tmp"
mv "$tmp" "$out"
