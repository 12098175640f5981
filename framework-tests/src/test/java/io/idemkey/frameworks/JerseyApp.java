package io.idemkey.frameworks;

import jakarta.ws.rs.BadRequestException;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.container.AsyncResponse;
import jakarta.ws.rs.container.Suspended;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.ext.ExceptionMapper;
import java.net.URI;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import org.glassfish.jersey.server.ResourceConfig;
import org.glassfish.jersey.server.ServerProperties;

/**
 * A JAX-RS application on Jersey 4 with plain String entities: a synchronous resource, an
 * {@code @Suspended AsyncResponse} resource resumed on another thread, a 400 and two 5xx answers.
 * Every resource method counts its runs in {@link Executions} and names its run in the response.
 */
final class JerseyApp {

  private JerseyApp() {}

  /** The application, its resources sharing {@code executions}. */
  static ResourceConfig application(Executions executions) {
    return new ResourceConfig()
        // No JAXB here, and no WADL wanted: say so rather than log a warning per start.
        .property(ServerProperties.WADL_FEATURE_DISABLE, true)
        .register(new Orders(executions))
        .register(new LedgerDownMapper());
  }

  /** A broken downstream, mapped to 500 by {@link LedgerDownMapper}. */
  static final class LedgerDownException extends RuntimeException {
    LedgerDownException(String message) {
      super(message);
    }
  }

  /** Answers {@link LedgerDownException} with 500. */
  public static final class LedgerDownMapper implements ExceptionMapper<LedgerDownException> {
    @Override
    public Response toResponse(LedgerDownException e) {
      return Response.serverError().type(MediaType.TEXT_PLAIN_TYPE).entity(e.getMessage()).build();
    }
  }

  /** The resources. Public: Jersey invokes resource methods reflectively. */
  @Path("/jaxrs")
  public static final class Orders {

    private final Executions executions;
    /** Resumes an AsyncResponse on another thread, after the resource method has returned. */
    private final Executor later = CompletableFuture.delayedExecutor(50, TimeUnit.MILLISECONDS);

    Orders(Executions executions) {
      this.executions = executions;
    }

    @POST
    @Path("/orders")
    @Consumes(MediaType.APPLICATION_JSON)
    public Response create(String body) {
      int run = executions.run("orders");
      return Response.created(URI.create("/jaxrs/orders/ord-" + run))
          .header("X-Run", run)
          .header("Cache-Control", "no-store")
          .type("application/json;charset=UTF-8")
          .entity("{\"id\":\"ord-" + run + "\",\"note\":\"caf\u00e9 \u20ac\",\"run\":" + run + "}")
          .build();
    }

    @POST
    @Path("/async")
    @Consumes(MediaType.APPLICATION_JSON)
    public void async(String body, @Suspended AsyncResponse response) {
      int run = executions.run("async");
      later.execute(() -> response.resume(
          Response.accepted()
              .header("X-Run", run)
              .type("text/plain;charset=UTF-8")
              .entity("accepted \u20ac run " + run)
              .build()));
    }

    @POST
    @Path("/invalid")
    @Consumes(MediaType.APPLICATION_JSON)
    public Response invalid(String body) {
      int run = executions.run("invalid");
      throw new BadRequestException(
          Response.status(400)
              .type("application/problem+json")
              .header("X-Error", "invalid")
              .entity("{\"title\":\"Invalid order\",\"status\":400,\"detail\":\"run " + run + "\"}")
              .build());
    }

    @POST
    @Path("/broken")
    @Consumes(MediaType.APPLICATION_JSON)
    public Response broken(String body) {
      int run = executions.run("broken");
      throw new LedgerDownException("the ledger did not answer (run " + run + ")");
    }

    @POST
    @Path("/async-unavailable")
    @Consumes(MediaType.APPLICATION_JSON)
    public void asyncUnavailable(String body, @Suspended AsyncResponse response) {
      int run = executions.run("async-unavailable");
      later.execute(() -> response.resume(
          Response.status(503)
              .header("Retry-After", "1")
              .type(MediaType.TEXT_PLAIN_TYPE)
              .entity("try again (run " + run + ")")
              .build()));
    }
  }
}
