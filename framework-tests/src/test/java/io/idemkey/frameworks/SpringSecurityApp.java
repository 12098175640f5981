package io.idemkey.frameworks;

import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.http.ResponseEntity;
import org.springframework.security.config.annotation.web.builders.HttpSecurity;
import org.springframework.security.config.annotation.web.configuration.EnableWebSecurity;
import org.springframework.security.web.SecurityFilterChain;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.servlet.config.annotation.EnableWebMvc;

/**
 * A Spring MVC application behind Spring Security with its default response headers
 * ({@code X-Content-Type-Options}, {@code X-Frame-Options}, {@code Cache-Control}, {@code Pragma},
 * {@code Expires}, ...), which its {@code HeaderWriterFilter} writes when the response commits.
 * Every request is permitted: only the headers matter here. Its controller answers without a
 * body in each way Spring MVC can.
 */
@Configuration
@EnableWebMvc
@EnableWebSecurity
@Import(SpringSecurityApp.Empty.class)
class SpringSecurityApp {

  @Bean
  SecurityFilterChain securityFilterChain(HttpSecurity http) throws Exception {
    return http
        .authorizeHttpRequests(requests -> requests.anyRequest().permitAll())
        .csrf(csrf -> csrf.disable())
        .build();
  }

  /** Answers with an empty body: 204, 201 without a body, sendError without a message. */
  @RestController
  @RequestMapping("/secured")
  static class Empty {

    private final Executions executions;

    Empty(Executions executions) {
      this.executions = executions;
    }

    @PostMapping("/no-content")
    ResponseEntity<Void> noContent() {
      executions.run("no-content");
      return ResponseEntity.noContent().build();
    }

    @PostMapping("/created")
    ResponseEntity<Void> created() {
      executions.run("created");
      return ResponseEntity.status(201).header("X-Run", "1").build();
    }

    @PostMapping("/send-error")
    void sendError(HttpServletResponse response) throws IOException {
      executions.run("send-error");
      response.sendError(409);
    }

    @PostMapping("/json")
    ResponseEntity<String> json() {
      executions.run("json");
      return ResponseEntity.ok().header("Content-Type", "application/json").body("{\"ok\":true}");
    }
  }
}
