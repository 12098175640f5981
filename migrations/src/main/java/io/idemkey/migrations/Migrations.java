package io.idemkey.migrations;

import java.util.Map;
import javax.sql.DataSource;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.output.MigrateResult;

/**
 * The one entry point that creates or upgrades the idempotency keys table.
 *
 * <p>The migrations keep their own Flyway history table ({@link TableName#historyTable()}), so they
 * never collide with a host application that runs Flyway on the same schema. A schema that already
 * holds other tables is baselined at version 0, so every idemkey migration still runs.
 *
 * <p>Thread-safe: it holds no state. Concurrent calls from several nodes are serialised by
 * Flyway's own lock on the history table.
 */
public final class Migrations {

  private static final String LOCATION = "classpath:io/idemkey/migrations/db";

  private Migrations() {}

  /**
   * Migrates {@code dataSource} so that {@code tableName} exists at the latest version.
   *
   * @param dataSource a PostgreSQL data source whose user may create the schema and table
   * @param tableName where the keys live
   * @return the number of migrations applied by this call (0 when already up to date)
   * @throws org.flywaydb.core.api.FlywayException if the database cannot be reached or a
   *     migration fails
   */
  public static int migrate(DataSource dataSource, TableName tableName) {
    MigrateResult result =
        Flyway.configure(Migrations.class.getClassLoader())
            .dataSource(dataSource)
            .schemas(tableName.schema())
            .defaultSchema(tableName.schema())
            .createSchemas(true)
            .table(tableName.historyTable())
            .baselineOnMigrate(true)
            .baselineVersion("0")
            .locations(LOCATION)
            .placeholders(Map.of("schema", tableName.schema(), "table", tableName.table()))
            .load()
            .migrate();
    return result.migrationsExecuted;
  }
}
