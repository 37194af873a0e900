package gregor.compat;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Entry point of the Java compatibility program. run.sh calls one sub-command per JVM:
 *
 * <pre>
 *   clients        --bootstrap B --label L [--count N]     round trips, ListOffsets, admin, edge cases
 *                  [--verify-only true --topics-of L0]     re-check the round trips run L0 wrote
 *   admin          --bootstrap B --label L [--only quotas] topic administration through AdminClient
 *                  (--only quotas: its client quota cases alone)
 *   console-files  --count N --input F --expected F        input and expected output for the console tools
 *   crash-produce  --bootstrap B --topic T --count N --rate R --acked F
 *   crash-verify   --bootstrap B --topic T --count N --acked F [--label L]
 *   dedupe         --broker-port P --proxy-port Q --signal-dir D     (see DedupeTest)
 *   groups, group-member, groups-setup, groups-restart                  (see GroupTests)
 *   txn            --bootstrap B --label L                 transactions (see TxnTests)
 *   txn-open       --bootstrap B --topic T --transactional-id X   leaves a transaction open
 *   failover       --bootstrap B (--admin HOST:PORT | --control FORMAT) --label L   clients through broker stops, elections,
 *                  reassignments and coordinator moves of a three-broker gregor (see FailoverTests)
 *   security       --bootstrap B --label L --client-config F [--bad-config G]   (see SecurityTests)
 *   acl-client     --bootstrap B --label L --client-config F --action A --topic T --expect E
 *                  one client action under ACLs, ok or refused (see AclTests)
 *   control        --bootstrap B --admin HOST:PORT --label L   the test control plane of a gregor
 *                  started with --clock manual: a lost Produce response, clock advance, reset
 *                  (see ControlTests)
 *   emulation      --bootstrap B --admin HOST:PORT --label L   4.4 clients against a gregor started with
 *                  --emulate-kafka-version 2.8 use 2.8's request versions (see EmulationTests)
 * </pre>
 *
 * Test sub-commands print one line per test case, {@code PASS <name>} or {@code FAIL <name>: why},
 * which run.sh counts; the exit status is non-zero if any case failed.
 */
public final class Main {
    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            usage();
        }
        Map<String, String> args = parseArgs(Arrays.copyOfRange(argv, 1, argv.length));
        if (argv[0].equals("clients")) {
            FetchSessionLog.install(); // before any Kafka logger exists
        }
        Report report = new Report();
        switch (argv[0]) {
            case "clients" -> ClientTests.run(args, report);
            case "admin" -> AdminTests.run(args, report);
            case "console-files" -> ConsoleFiles.write(args);
            case "crash-produce" -> CrashProducer.run(args);
            case "crash-verify" -> CrashVerify.run(args, report);
            case "dedupe" -> DedupeTest.run(args, report);
            case "groups" -> GroupTests.run(args, report);
            case "group-member" -> GroupTests.member(args);
            case "groups-setup" -> GroupTests.setup(args);
            case "groups-restart" -> GroupTests.restart(args, report);
            case "groups-live-verify" -> GroupTests.liveVerify(args, report);
            case "txn" -> TxnTests.run(args, report);
            case "txn-open" -> TxnTests.open(args);
            case "failover" -> FailoverTests.run(args, report);
            case "security" -> SecurityTests.run(args, report);
            case "acl-client" -> AclTests.run(args, report);
            case "control" -> ControlTests.run(args, report);
            case "emulation" -> EmulationTests.run(args, report);
            default -> usage();
        }
        // Client threads (e.g. a producer stuck in close) must not keep the JVM alive.
        System.exit(report.failed() == 0 ? 0 : 1);
    }

    static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + Arrays.toString(argv));
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        return args;
    }

    static String required(Map<String, String> args, String name) {
        String v = args.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }

    private static void usage() {
        System.err.println("usage: Main clients|console-files|crash-produce|crash-verify|dedupe|groups|group-member|groups-setup|groups-restart --name value ...");
        System.exit(2);
    }
}
