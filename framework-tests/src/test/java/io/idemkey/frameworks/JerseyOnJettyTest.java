package io.idemkey.frameworks;

class JerseyOnJettyTest extends JerseyContract {
  @Override
  ServletContainer newContainer() {
    return new JettyContainer();
  }
}
