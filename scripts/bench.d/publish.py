"""scripts/bench --publish: copy a run's table, JSON, chart and raw tool output to docs/bench/
and put the table into README.md between the bench markers of its Performance section (added
before "## Status" if the README has none). Usage: publish.py RUN_DIR DOCS_DIR README"""
import os
import shutil
import sys

BEGIN = "<!-- bench:begin (scripts/bench --publish rewrites this block) -->"
END = "<!-- bench:end -->"


def main(run, docs, readme):
    os.makedirs(docs, exist_ok=True)
    for name in ("results.md", "results.json", "chart.png"):
        shutil.copyfile(os.path.join(run, name), os.path.join(docs, name))
    # Every tool's own output (small: the brokers log warnings only).
    shutil.rmtree(os.path.join(docs, "raw"), ignore_errors=True)
    shutil.copytree(os.path.join(run, "raw"), os.path.join(docs, "raw"))
    with open(os.path.join(run, "results.md")) as f:
        # The main table and the admin listener's on/off table under it; the diagnostics below
        # them stay in docs/bench/results.md.
        table = f.read().split("### Where the time went")[0].strip()
    rel = os.path.relpath(docs, os.path.dirname(os.path.abspath(readme)))
    block = (f"{BEGIN}\n{table}\n\n![gregor vs Apache Kafka]({rel}/chart.png)\n\n"
             f"Where the time went (client vs broker CPU): [`{rel}/results.md`]({rel}/results.md); "
             f"numbers per round: [`{rel}/results.json`]({rel}/results.json); every tool's output: "
             f"[`{rel}/raw/`]({rel}/raw/).\n{END}")
    with open(readme) as f:
        text = f.read()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        section = f"## Performance\n\n{block}\n\n"
        text = text.replace("## Status", section + "## Status", 1) if "## Status" in text \
            else text.rstrip("\n") + "\n\n" + section
    with open(readme, "w") as f:
        f.write(text)
    print(f"published to {docs} and {readme}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
