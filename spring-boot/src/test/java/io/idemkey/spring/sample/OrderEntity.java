package io.idemkey.spring.sample;

import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.GenerationType;
import jakarta.persistence.Id;
import jakarta.persistence.Table;

/** An order row, written through the JPA repository. */
@Entity
@Table(name = "orders")
public class OrderEntity {
  @Id
  @GeneratedValue(strategy = GenerationType.IDENTITY)
  private Long id;

  private String reference;
  private String item;
  private int quantity;

  protected OrderEntity() {}

  OrderEntity(String reference, String item, int quantity) {
    this.reference = reference;
    this.item = item;
    this.quantity = quantity;
  }

  public Long getId() {
    return id;
  }

  public String getReference() {
    return reference;
  }

  public String getItem() {
    return item;
  }

  public int getQuantity() {
    return quantity;
  }
}
