package gregor.compat;

/** Prints one PASS/FAIL line per test case in the format run.sh counts. */
final class Report {
    /** A failed expectation inside a test case; the message becomes the FAIL reason. */
    static final class CheckFailed extends RuntimeException {
        CheckFailed(String message) {
            super(message);
        }
    }

    interface Case {
        void run() throws Exception;
    }

    private int passed;
    private int failed;

    static void check(boolean condition, String format, Object... args) {
        if (!condition) {
            throw new CheckFailed(String.format(format, args));
        }
    }

    /** Runs one case; any exception fails it, and the next case still runs. */
    void run(String name, Case body) {
        long start = System.nanoTime();
        try {
            body.run();
            pass(name + " (" + (System.nanoTime() - start) / 1_000_000 + " ms)");
        } catch (CheckFailed e) {
            fail(name, e.getMessage());
        } catch (Throwable e) {
            fail(name, describe(e));
        }
    }

    void pass(String name) {
        passed++;
        System.out.println("PASS " + name);
        System.out.flush();
    }

    void fail(String name, String why) {
        failed++;
        System.out.println("FAIL " + name + ": " + why.replace('\n', ' '));
        System.out.flush();
    }

    int failed() {
        return failed;
    }

    /** Exception chain on one line: futures wrap the client's real exception. */
    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (sb.length() > 0) {
                sb.append(" <- caused by ");
            }
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
            if (t.getCause() == t) {
                break;
            }
        }
        return sb.toString();
    }
}
