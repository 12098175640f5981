package io.idemkey.frameworks;

class JerseyOnTomcatTest extends JerseyContract {
  @Override
  ServletContainer newContainer() {
    return new TomcatContainer();
  }
}
