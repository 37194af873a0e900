package gregor.compat;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Writes the console producer's input and the console consumer's expected output for the same
 * records, so run.sh only has to diff. The input uses parse.key and parse.headers with the
 * default separators (headers TAB key TAB value, headers "k:v,k:v"); the expected output is what
 * DefaultMessageFormatter prints with print.partition, print.offset, print.headers and print.key.
 */
final class ConsoleFiles {
    private ConsoleFiles() {}

    static void write(Map<String, String> args) throws IOException {
        int count = Integer.parseInt(Main.required(args, "count"));
        try (BufferedWriter input = Files.newBufferedWriter(Path.of(Main.required(args, "input")), StandardCharsets.UTF_8);
             BufferedWriter expected = Files.newBufferedWriter(Path.of(Main.required(args, "expected")), StandardCharsets.UTF_8)) {
            for (int i = 0; i < count; i++) {
                String headers = Records.consoleHeaders(i);
                String key = Records.consoleKey(i);
                String value = Records.consoleValue(i);
                input.write(headers + "\t" + key + "\t" + value + "\n");
                expected.write("Partition:0\tOffset:" + i + "\t" + headers + "\t" + key + "\t" + value + "\n");
            }
        }
    }
}
