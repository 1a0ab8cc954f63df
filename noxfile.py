"""nox sessions: lint, tests (incl. slow), report (quick sweep + HTML).

Sessions reuse their virtualenvs and use the running interpreter, so nox never
downloads a Python.
"""

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
PY = None  # a virtualenv of the interpreter nox runs under: nothing is downloaded


@nox.session(python=PY)
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "factorbench", "tests", "noxfile.py")


@nox.session(python=PY)
def tests(session):
    """Every test, including the ones marked slow."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "slow or not slow", *session.posargs)


@nox.session(python=PY)
def report(session):
    """The quick sweep and its HTML report, into a throwaway database."""
    session.install("-e", ".")
    db = session.create_tmp() + "/nox.sqlite"
    session.run("factorbench", "run", "--preset", "quick", "--db", db,
                "--report", "reports/quick.html")
